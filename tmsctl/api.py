"""``tmsctl.api``, where the docs publish it: a re-export of ``tmsctl.lab.api`` (the embedding API)."""

from tmsctl.lab.api import *  # noqa: F403
