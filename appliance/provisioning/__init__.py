"""First-boot provisioning: a file on the boot partition, checked, then put on the data partition.

`file` reads and checks a provisioning file (every problem named by its key path);
`apply` writes what it carries into the data directory in one atomic step.
"""
