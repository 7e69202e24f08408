"""Your descriptors: each module here that defines ``DESCRIPTOR = Descriptor(...)`` is found by
``descriptors.registry`` (files starting with '_' are not). docs/EXTENDING.md walks through one."""
