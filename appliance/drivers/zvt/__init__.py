"""ZVT, the DACH card terminal interface (PA00P015 commands, PA00P016 transport).

One message layer (`apdu`, `fields`) serves both transports; `serial_frame` is the serial
line's framing. Pure byte functions: no port, no thread, testable on their own.
"""
