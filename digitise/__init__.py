"""lgd: Lloyd George digitisation."""
