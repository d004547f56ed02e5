"""`daozhang demo`: a terminal, a POS, a broker, the backend and an acquirer on one machine, live."""
