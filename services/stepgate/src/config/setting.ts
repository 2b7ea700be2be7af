import { z } from "zod";

/** What the environment variable of one setting is, for loading it and for docs/configuration.md. */
export interface SettingMeta {
  /** The environment variable. */
  env: string;
  /** One line for the documentation: what it does, not how. */
  description: string;
  /** The value's unit in the environment: ms, s, or none. */
  unit?: "ms" | "s";
  /** The default as the documentation says it, when the schema's own default is not the whole story. */
  defaultText?: string;
}

/** The metadata key settings carry (zod's global registry is shared with other schemas). */
const metaKey = "stepgateSetting";

/** `schema` read from the environment variable `meta.env`: the one place a setting is declared. */
export function setting<T extends z.ZodType>(schema: T, meta: SettingMeta): T {
  return schema.meta({ [metaKey]: meta }) as T;
}

/** The setting `schema` declares, if it is one (see `setting`). */
export function settingOf(schema: z.ZodType): SettingMeta | undefined {
  const meta = schema.meta() as Record<string, unknown> | undefined;
  return meta?.[metaKey] as SettingMeta | undefined;
}

/** The object schema inside `schema`: itself, or the input of a transform (`z.object(...).transform`). */
export function objectOf(schema: z.ZodType): z.ZodObject | undefined {
  if (schema instanceof z.ZodObject) return schema;
  if (schema instanceof z.ZodPipe) return objectOf(schema.in as z.ZodType);
  return undefined;
}

/** Every setting under `schema`, with the path to it (field names, nested objects included). */
export function settingsOf(
  schema: z.ZodType,
  path: string[] = [],
): { path: string[]; meta: SettingMeta; schema: z.ZodType }[] {
  const meta = settingOf(schema);
  if (meta) return [{ path, meta, schema }];
  const object = objectOf(schema);
  if (!object) return [];
  return Object.entries(object.shape).flatMap(([key, child]) =>
    settingsOf(child as z.ZodType, [...path, key]),
  );
}

/** Milliseconds: whole, 0 to a day. */
export const ms = () =>
  z.coerce
    .number()
    .int()
    .min(0)
    .max(24 * 3600 * 1000);

/** A whole number from `min` to `max`. */
export const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** A switch: 1/0, true/false, yes/no, on/off (zod's stringbool). */
export const flag = () => z.stringbool().default(false);
