"""Options shared by every test folder."""
