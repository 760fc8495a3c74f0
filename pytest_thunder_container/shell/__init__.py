"""A shell on a target: the Shell protocol, the console over any byte stream, files both ways."""
