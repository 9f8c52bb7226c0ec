"""The generic BentoML service every `services:` entry is built from."""
