"""Which config keys a run read (result.json `unused_keys`): the mapping that records it is the
reporter's (`hpsys_reporter.tracked`), so the engine and any script on the reporter count reads
alike. See that module for what counts as a read."""

from hpsys_reporter.tracked import TrackedDict, plain, track, unused

__all__ = ["TrackedDict", "plain", "track", "unused"]
