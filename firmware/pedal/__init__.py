"""The pedal firmware (MicroPython): see firmware/README.md."""
