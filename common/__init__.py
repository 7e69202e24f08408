"""The ground floor: what every package uses (atomic writes, locks, one-line errors, where shared test data lives). Imports no project package."""
