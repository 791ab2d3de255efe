"""The fleet dashboard: server-rendered pages for admins, served by `appliance-hub web`."""
