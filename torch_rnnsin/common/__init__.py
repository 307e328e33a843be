"""What the porter, the lesson and the commands share: errors, atomic writes, run folders."""
