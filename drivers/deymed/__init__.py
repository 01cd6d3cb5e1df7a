"""Deymed DuoMAG (MP, XT, MP-Dual, QPS): wire codec and model spec. The unit never answers commands."""
