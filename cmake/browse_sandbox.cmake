# browse_sandbox.cmake: the sandboxed browse path (being written).
