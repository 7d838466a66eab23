from configparser import ConfigParser
import setuptools, shlex

# note: all settings are in settings.ini; edit there, not here
config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o:cfg[o] for o in cfg_keys}

licenses = {
    'apache2': ('Apache Software License 2.0','OSI Approved :: Apache Software License'),
    'mit': ('MIT License', 'OSI Approved :: MIT License'),
}
statuses = [ '0 - Pre-Planning', '1 - Planning', '2 - Pre-Alpha',
    '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive' ]
py_versions = '3.10 3.11 3.12 3.13'.split()

requirements = shlex.split(cfg.get('requirements', ''))
if cfg.get('pip_requirements'): requirements += shlex.split(cfg.get('pip_requirements', ''))
min_python = cfg['min_python']
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))

# Optional backends, imported lazily inside the functions that need them.
extras = {
    'torch': ['torch>=2.1'],
    'deepchem': ['torch>=2.1', 'deepchem>=2.8'],
    'dask': ['dask[array,dataframe]>=2024.1', 'distributed>=2024.1'],
    'shap': ['shap>=0.44'],
    'scanpy': ['scanpy>=1.10'],
    # scANVI (model 'scanvi'): the scvi-tools release for Python 3.11; it adds packages and changes none of the
    # versions above (measured with torch 2.13.0 CPU)
    'scvi': ['torch>=2.1', "scvi-tools==1.4.2; python_version >= '3.11'"],
    # scaml_report: runs the analysis notebook (papermill, a Python kernel) and renders its HTML (nbconvert)
    'report': ['papermill>=2.5', 'nbconvert', 'ipykernel'],
}
extras['all'] = sorted({r for k in ('torch', 'dask', 'shap', 'scanpy', 'report') for r in extras[k]})
extras['dev'] = dev_requirements + extras['torch'] + extras['dask'] + extras['scvi']

setuptools.setup(
    name = cfg['lib_name'],
    license = lic[0],
    classifiers = [
        'Development Status :: ' + statuses[int(cfg['status'])],
        'Intended Audience :: ' + cfg['audience'].title(),
        'Natural Language :: ' + cfg['language'].title(),
    ] + ['Programming Language :: Python :: '+o for o in py_versions[py_versions.index(min_python):]] + (['License :: ' + lic[1] ] if lic[1] else []),
    url = cfg['git_url'],
    packages = setuptools.find_packages(include=['scaml', 'scaml.*']),
    include_package_data = True,
    package_data = {'scaml': ['R/*.R']},
    # the report notebook run by scaml_report (scaml.report.analysis_notebook finds it under <prefix>/share)
    data_files = [('share/scaml/analysis', ['nbs/analysis/cross_batch.ipynb'])],
    install_requires = requirements,
    extras_require = extras,
    dependency_links = cfg.get('dep_links','').split(),
    python_requires  = '>=' + cfg['min_python'],
    long_description = open('README.md', encoding='utf-8').read(),
    long_description_content_type = 'text/markdown',
    zip_safe = False,
    entry_points = {
        'console_scripts': cfg.get('console_scripts','').split(),
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d']
    },
    **setup_cfg)
