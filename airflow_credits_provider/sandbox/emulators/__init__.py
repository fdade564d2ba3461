"""One emulation per vendor (see :mod:`.base`); every module here is found and registered."""
