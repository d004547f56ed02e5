"""`daozhang reconcile`: a journal held against an acquirer settlement file, and its reports."""
