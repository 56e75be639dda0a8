// Prints a field of a package.json (dotted path, e.g. scripts.build) and exits 0 when it is a
// non-empty string or a non-empty object, else exits 1. Lets the bash scripts ask questions about
// package.json without parsing JSON in bash.
import { readFileSync } from 'node:fs';

const [file, field] = process.argv.slice(2);
let value;
try {
  value = JSON.parse(readFileSync(file, 'utf8'));
} catch (err) {
  console.error(`cannot read ${file}: ${err.message}`);
  process.exit(2);
}
for (const key of field.split('.')) value = value !== null && typeof value === 'object' && Object.hasOwn(value, key) ? value[key] : undefined;
if (typeof value === 'string' && value !== '') {
  console.log(value);
  process.exit(0);
}
if (value !== null && typeof value === 'object' && Object.keys(value).length > 0) process.exit(0);
process.exit(1);
