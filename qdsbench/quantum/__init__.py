"""The QontOT circuit: ansatz layout, a fast batched torch simulator, the same circuit in qiskit, Aer sampling."""
