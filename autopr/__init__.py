"""AutoPR Engine: the application whose database the migration flows operate on."""
