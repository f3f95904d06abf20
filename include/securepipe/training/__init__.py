"""Differentially private training, privacy accounting, the budget ledger and the model card.

Modules (TensorFlow is imported only inside functions; `ledger` is pure standard
library so the Airflow environment can use it):
    accounting  noise multiplier for a target epsilon, epsilon spent, privacy statement (dp_accounting)
    ledger      per-dataset privacy budget, refused before training (PrivacyLedger)
    data        load Parquet / CSV / encrypted input in memory, numeric features, split, standardise
    model       the MLP, DP-SGD with fast gradient clipping, device selection
    evaluate    accuracy, AUC, calibration, loss-threshold membership-inference attack
    card        model card JSON + Markdown
    pipeline    one run end to end: train_and_report(...)
    bench       `securepipe bench dp` and `securepipe bench mia`
"""
