"""nbval settings for the notebooks: never compare Graphviz SVG (it differs between versions)."""


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("image/svg+xml", "application/javascript")
