#!/usr/bin/env node
// Generates sdk/src/generated/model.ts from proto/keyhold.proto so that the TypeScript
// types can never drift from the schema, and sdk/src/generated/proto-source.ts, the schema's text
// for protobufjs at run time. Run by the SDK's build; the output is not committed.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const protoPath = fileURLToPath(new URL('../proto/keyhold.proto', import.meta.url));
const outPath = fileURLToPath(new URL('../src/generated/model.ts', import.meta.url));
const pkg = protobuf.loadSync(protoPath).lookup('keyhold.v1');

const scalar = {
  string: 'string',
  bool: 'boolean',
  int32: 'number',
  uint32: 'number',
  sint32: 'number',
  double: 'number',
  float: 'number',
};
const lines = ['// Generated from proto/keyhold.proto by scripts/gen-model.mjs. Do not edit.', ''];

function tsType(field) {
  field.resolve();
  if (field.resolvedType instanceof protobuf.Enum || field.resolvedType instanceof protobuf.Type) return field.resolvedType.name;
  const t = scalar[field.type];
  if (!t) throw new Error(`gen-model: unsupported field type ${field.type} on ${field.fullName}`);
  return t;
}

for (const nested of pkg.nestedArray) {
  if (nested instanceof protobuf.Enum) {
    const names = Object.keys(nested.values).filter((n) => !n.endsWith('_UNSPECIFIED'));
    const upper = nested.name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
    const constName = upper.endsWith('Y') ? `${upper.slice(0, -1)}IES` : `${upper}S`;
    lines.push(`export const ${constName} = [${names.map((n) => `'${n}'`).join(', ')}] as const;`);
    lines.push(`export type ${nested.name} = (typeof ${constName})[number];`, '');
  } else if (nested instanceof protobuf.Type) {
    lines.push(`export interface ${nested.name} {`);
    for (const field of nested.fieldsArray) {
      let t = tsType(field);
      if (field.map) t = `Record<string, ${t}>`;
      else if (field.repeated) t = `${t}[]`;
      lines.push(`  ${field.name}: ${t};`);
    }
    lines.push('}', '');
  }
}
mkdirSync(new URL('../src/generated/', import.meta.url), { recursive: true });
writeFileSync(outPath, lines.join('\n'));
// The schema itself, for protobufjs at run time: a module, not a file beside the code, so that it
// is there also when the SDK is bundled into a plugin's single file.
const source = readFileSync(protoPath, 'utf8');
writeFileSync(
  new URL('../src/generated/proto-source.ts', import.meta.url),
  `// Generated from proto/keyhold.proto by scripts/gen-model.mjs. Do not edit.\n\nexport const KEYHOLD_PROTO = ${JSON.stringify(source)};\n`,
);
