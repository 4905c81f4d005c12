"""Developer tools: documentation generators and checks, each also runnable as a script."""
