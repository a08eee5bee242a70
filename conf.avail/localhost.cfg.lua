-- The default domain of a fresh checkout: `make run` serves it.
VirtualHost "localhost"
