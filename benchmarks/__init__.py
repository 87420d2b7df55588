"""Side-by-side benchmarks of zfitlite against its peers (``nox -s bench``)."""
