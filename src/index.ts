// Programmatic entry: build and run the server from code.
export { loadConfig, ConfigError, type Config } from './config.js';
export { createApp, type App } from './app.js';
export { Server, type Component } from './server/server.js';
