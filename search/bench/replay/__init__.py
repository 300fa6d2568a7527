"""Search strategies replayed on recorded learning curves (`search.bench --sections replay`):
section.py runs the section, simulator.py one search on a simulated clock, lcbench.py the
curves of LCBench's surrogate, figures.py what is read of them. Light to import: --help reads
lcbench's task names."""
