from tmsctl.cli import main

main()
