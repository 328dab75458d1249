/**
 * Where a consumer's path lands in a JSON Schema (draft-07, local `#/definitions/…` refs):
 * the sub-schema it names and whether every step of it is `required` — a path through an
 * optional property may be missing from a valid payload.
 */

export interface SchemaNode {
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
  required?: string[];
  items?: SchemaNode;
  $ref?: string;
  additionalProperties?: boolean | SchemaNode;
}

export interface SchemaHit {
  schema: SchemaNode;
  /** Every property on the way is in its parent's `required`. */
  required: boolean;
}

function deref(root: SchemaNode, node: SchemaNode): SchemaNode {
  let n = node;
  for (let hops = 0; n.$ref !== undefined; hops++) {
    if (hops > 10 || !n.$ref.startsWith('#/')) throw new Error(`unsupported $ref ${n.$ref}`);
    let target: unknown = root;
    for (const part of n.$ref.slice(2).split('/')) {
      target = (target as Record<string, unknown>)[part];
    }
    if (target === undefined) throw new Error(`dangling $ref ${n.$ref}`);
    n = target as SchemaNode;
  }
  return n;
}

/** The schema at a GJSON path's components (`#` steps into `items`); undefined = not in the schema. */
export function schemaAt(
  root: SchemaNode,
  components: string[],
  from: SchemaNode = root,
): SchemaHit | undefined {
  let node = deref(root, from);
  let required = true;
  for (const c of components) {
    if (c === '#' || /^\d+$/.test(c)) {
      if (node.items === undefined) return undefined;
      node = deref(root, node.items);
      if (c !== '#') required = false; // an index may lie past the end
      continue;
    }
    const next = node.properties?.[c];
    if (next === undefined) return undefined;
    required = required && (node.required ?? []).includes(c);
    node = deref(root, next);
  }
  return { schema: node, required };
}

/**
 * A json_v2 object key (nested keys joined with `_`, e.g. `flags_range`) resolved against
 * an object schema: the properties it goes through, or undefined when none matches.
 */
export function schemaAtFlatKey(
  root: SchemaNode,
  object: SchemaNode,
  flatKey: string,
): SchemaHit | undefined {
  const node = deref(root, object);
  const direct = schemaAt(root, [flatKey], node);
  if (direct) return direct;
  for (const name of Object.keys(node.properties ?? {})) {
    if (!flatKey.startsWith(`${name}_`)) continue;
    const inner = schemaAt(root, [name], node);
    if (!inner) continue;
    const rest = schemaAtFlatKey(root, inner.schema, flatKey.slice(name.length + 1));
    if (rest) return { schema: rest.schema, required: inner.required && rest.required };
  }
  return undefined;
}

/** The JSON type names a schema allows (`integer` counts as `number` too). */
export function schemaTypes(node: SchemaNode): string[] {
  const t = node.type === undefined ? [] : Array.isArray(node.type) ? node.type : [node.type];
  return t.includes('integer') ? [...t, 'number'] : t;
}
