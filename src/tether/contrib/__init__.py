"""Helpers that connect Tether to web frameworks: who the user of a socket is, from the web app's own
session (:mod:`tether.contrib.django`, :mod:`tether.contrib.starlette`). Each imports its framework only
when used."""
