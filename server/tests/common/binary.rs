//! Starting the real `parley` binary (not in-process) for crash and smoke tests.
