"""Thin command modules: parse options, call one core function, render the result."""
