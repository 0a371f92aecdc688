"""Recipes: numbered procedures built on :mod:`charforge.api` (a sweep of training settings, the mini-world
experiment). They sit above the API and only call it; nothing below imports them."""
