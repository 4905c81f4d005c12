"""The Terminal Server Licensing utility (`tslic admin`)."""
