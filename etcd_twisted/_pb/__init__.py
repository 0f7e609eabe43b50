"""Generated from proto/ by bin/genproto; never edited by hand."""
