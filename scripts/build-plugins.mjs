#!/usr/bin/env node
// After `tsc -b`: makes each compiled first-party plugin (dist/plugins/src/<name>.js, shebang
// first) executable, so that enabling one is a symlink into plugins/ (see plugins/README.md).
// 0755 whatever the umask: the server refuses a plugin that group or others can write to.
import { chmodSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = 'dist/plugins/src';
chmodSync(dir, 0o755);
for (const name of readdirSync(dir).filter((n) => n.endsWith('.js'))) chmodSync(join(dir, name), 0o755);
