"""Small games with known solutions: matrix games and turn-based games."""
