"""The MCP file exchange: SFTP server, file recognition, CalAIM file parsing and generation."""
