"""Running a plan on Prefect: local server and worker, apply (blocks, pool, deployments), run."""
