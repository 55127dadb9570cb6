/** One formatted request body and the headers that describe it (lower-case names). */
export interface Delivery {
  headers: Record<string, string>;
  body: string;
}
