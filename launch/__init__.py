"""Launch files, the process launcher and the ``drivestack`` command line."""
