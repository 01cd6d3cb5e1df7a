"""``tmsctl.errors``, where the docs publish it: a re-export of ``tmsctl.core.errors``."""

from tmsctl.core.errors import *  # noqa: F403
