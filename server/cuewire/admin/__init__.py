"""The admin side: authentication, the QA view, the designers' studio, metrics."""
