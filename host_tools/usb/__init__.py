"""The technician's side of the USB service port (SPEC 8): the client and `device pull`."""
