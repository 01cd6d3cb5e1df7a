"""``tmsctl.clock``, where the docs publish it: a re-export of ``tmsctl.core.clock``."""

from tmsctl.core.clock import *  # noqa: F403
