// Prints a field of a package.json (dotted path, e.g. scripts.build) and exits 0 when it is a
// non-empty string or a non-empty object, else exits 1. Lets the bash scripts ask questions about
// package.json without parsing JSON in bash.
// With --present FILE FIELD..., prints the given fields that are set, one per line.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const many = args[0] === '--present';
const [file, ...fields] = many ? args.slice(1) : args;
let pkg;
try {
  pkg = JSON.parse(readFileSync(file, 'utf8'));
} catch (err) {
  console.error(`cannot read ${file}: ${err.message}`);
  process.exit(2);
}
const lookup = (field) => {
  let value = pkg;
  for (const key of field.split('.')) value = value !== null && typeof value === 'object' && Object.hasOwn(value, key) ? value[key] : undefined;
  return value;
};
const isSet = (value) => (typeof value === 'string' && value !== '') || (value !== null && typeof value === 'object' && Object.keys(value).length > 0);
if (many) {
  for (const field of fields) if (isSet(lookup(field))) console.log(field);
  process.exit(0);
}
const value = lookup(fields[0]);
if (typeof value === 'string' && value !== '') console.log(value);
process.exit(isSet(value) ? 0 : 1);
