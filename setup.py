"""Package discovery for the plugin-folder mapping; all metadata lives in pyproject.toml.

The top-level folders calcjobs/, parsers/ and workflows/ install as aiida_slem.calcjobs, aiida_slem.parsers
and aiida_slem.workflows, so nothing generic lands in site-packages. setuptools' declarative find cannot
express this remapping for subpackages, hence this file.
"""

from setuptools import find_packages, setup

PLUGIN_DIRS = ("calcjobs", "parsers", "workflows")

packages = find_packages(include=["slem", "slem.*", "aiida_slem", "aiida_slem.*"])
package_dir = {}
for folder in PLUGIN_DIRS:
    for sub in [""] + find_packages(where=folder):
        name = f"aiida_slem.{folder}" + (f".{sub}" if sub else "")
        packages.append(name)
        package_dir[name] = folder + ("/" + sub.replace(".", "/") if sub else "")

setup(packages=packages, package_dir=package_dir)
