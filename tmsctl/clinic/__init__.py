"""Clinical measurements from EMG: MEP detection, EMG inputs, and what is built on them (automatic
motor threshold, hotspot search, input–output curves)."""
