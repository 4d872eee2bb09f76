"""Campaigns: a paper's protocol run over many interrupted sessions and machines, tables from committed records."""
