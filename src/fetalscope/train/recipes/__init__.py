"""Recipes: end-to-end runs that build a shipped bundle or a study report from real data (read a dataset,
split it, train with the project's trainers, evaluate with the shared statistics, write the bundle's card
and report). Each recipe is a module (or package) here; ``scripts/`` only parse options and call them."""
