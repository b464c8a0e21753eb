#!/usr/bin/env node
// Thin shim: the compiled CLI owns argv and the environment.
import '../dist/src/cli/main.js';
