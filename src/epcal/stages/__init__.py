"""The calibration stages (paper section 4, appendices A.1 and A.3), one module per stage; each
returns tidy tables.

Every stage is one function with plain arguments (the config slice it uses as a dict);
:mod:`epcal.cli.calibrate` wraps them as ``epcal`` verbs and the Snakemake rules call those verbs.
The EPM is run through :func:`epcal.simulate.run_ensemble`, whose random stream per replica
depends only on (parameters, seed, replica index): batching never changes a result, and the twin
reference uses a seed disjoint from the calibration's.

``twin``          the twin reference;
``macro``         macro cells: L_macro over the (lambda, chi) search of one (l, k);
``meso``          meso cells: L_stat around each macro cell's optimum;
``fit``           k_hat, lambda_hat, chi_hat per l;
``temperature``   the KMC temperature scan, T_hat and the optimum table;
``optimum``       the ensemble at the optimum and the emergent analyses (section 5);
``slip_systems``  lambda_hat at other numbers of slip systems, k_hat and chi_hat held (A.1, method fixed);
``common``        what they share (running an ensemble, probe specs, grids, seeds, metadata).
"""
