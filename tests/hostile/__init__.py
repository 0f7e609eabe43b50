"""Hostile input: what a client that sends too much, too deep or too strange gets, and
that it gets it without holding the member."""
