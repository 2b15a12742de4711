"""camdrive's data collection, training, evaluation, benchmarks and the `camdrive` command line."""
